"""A Kubernetes cluster of one or more nodes built from package registries, to apply corridor's
manifests to.

Layers: `binaries` (Kubernetes, CoreDNS and the pause image, built once into the cache),
`layout` (the run's directories, addresses and config files, pure), `control_plane` and `node` (the
processes, each node in namespaces of its own, and their clean-up) and `e2e` (apply overlays, judge
the producers' Job, lose a node mid-Job).
"""
