"""Bus ports and device drivers for the parts a library-floor gateway reads and drives."""
