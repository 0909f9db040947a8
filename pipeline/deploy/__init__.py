"""What a deployment on Kubernetes needs besides its manifests."""
