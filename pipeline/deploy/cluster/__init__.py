"""A single-node Kubernetes built from package registries, to apply corridor's manifests to.

Layers: `binaries` (Kubernetes, CoreDNS and the pause image, built once into the cache),
`layout` (the run's directories, addresses and config files, pure), `node` (the processes and their
clean-up) and `e2e` (apply the dev-plain overlay and judge the producers' Job).
"""
