"""The local development stack: real services on loopback, without docker."""
