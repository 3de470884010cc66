"""hybridrec plugin: time-decayed popularity."""
