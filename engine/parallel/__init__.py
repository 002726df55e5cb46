"""Several processes (accelerate) and FSDP2 sharding, used by training and by the generation backends."""
