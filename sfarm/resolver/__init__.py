"""The data resolver: a task on node X reads datasets produced on node Y with no configuration.

Deploy tells each consumer node which producers feed it (`routes`), ships the network's farm key
to consumers and authorizes it on producers behind a forced command (`gate`) that lets it only
read the producer's `data/`. On the consumer a supervised process follows each producer's change
stream and pulls each changed dataset into `mirror/<producer>/<id>/`.

This package's `__init__` imports nothing: the gate starts on every pull and must start fast.
"""
