"""Exports and imports: phy/phylib folders and the SpikeInterface curation format.

Each sub-module is imported on its own (``curalog.io.phy``, ``curalog.io.phy_import``,
``curalog.io.spikeinterface``): the face names them, it does not load them.
"""

__all__ = ["phy", "phy_import", "spikeinterface"]
