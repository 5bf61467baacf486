"""tcplab: break TCP handshakes and teardowns on purpose on a real Linux kernel."""

__version__ = "0.1.0"
