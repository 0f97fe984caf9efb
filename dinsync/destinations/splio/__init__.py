"""Splio "Synchronize contacts": over SFTP file imports (sftp.py) or over the contacts API (api.py)."""
from .destination import CONTACTS, SplioDestination
from .settings import SftpSettings, SplioSettings

__all__ = ["CONTACTS", "SftpSettings", "SplioDestination", "SplioSettings"]
