"""The embedded default: the whole system on one machine, AWS emulated on loopback."""
