"""TLS for the listeners: certificates from files or from ACME, client CAs, protocol limits."""
