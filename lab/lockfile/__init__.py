"""lab.lock: exactly what a lab was made of (box, packages, images, downloads, versions),
read from its hosts, written for review and version control, and compared on
`lab up --locked`."""
