"""Exports and imports: phy/phylib folders and the SpikeInterface curation format."""
