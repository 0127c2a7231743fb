"""Offline bundles: everything `lab up` downloads, gathered once into one folder with a
manifest and checksums, verified before use, and provisioned from with no internet."""
