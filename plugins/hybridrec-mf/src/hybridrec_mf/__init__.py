"""hybridrec plugin: implicit-feedback matrix factorisation (ALS, through ``implicit``)."""
