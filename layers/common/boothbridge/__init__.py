"""boothbridge common layer: everything the functions share."""
