"""Running vlaforge on Kubernetes: the cluster profile, multi-node launch (TrainJob) and compilation."""
