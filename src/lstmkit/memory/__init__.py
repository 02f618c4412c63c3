"""Long memory, shown: long-lag tasks (``tasks``, ``train``) and vanishing gradients
measured (``gradients``). The gate explorer is :mod:`lstmkit.explain`."""
