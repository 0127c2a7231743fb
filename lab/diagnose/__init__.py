"""Finding out what is wrong with a lab: the self-check at the end of `lab up`, and the
archive of `lab logs` that a user can send instead of access to their machine."""
