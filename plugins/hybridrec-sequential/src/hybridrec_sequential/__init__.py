"""hybridrec plugin: SASRec sequential recommendation."""
