"""One flow per life cycle stage, one file per flow: the file name is the flow name and the deployment name."""
