"""The ``oar`` command line. It may import anything; nothing imports it."""
