import sys

from tcplab.vm.kernelvm import main

sys.exit(main())
