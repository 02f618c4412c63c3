"""Long memory, shown: long-lag tasks (``tasks``, ``train``), vanishing gradients measured
(``gradients``) and the LSTM's gates made visible (``explain``, ``explain_html``)."""
