"""Character-level language modelling: corpus and vocabulary, the model, training, sampling."""
