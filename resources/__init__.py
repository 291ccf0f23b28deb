"""Icons and demo media, shipped inside the package as infinitetalk_gui.resources."""
