"""What other apps hear of instances, so they depend on this app and not the other way round."""

from django.dispatch import Signal

# Sent by `manage.py instances load` after each instance file is applied, with
# `instance` and `user` (the maintainer loading it). A receiver returns a line
# the command prints after "instance <id>: ", or None when it did nothing: the
# registry app queues the keyring creation this way.
instance_loaded = Signal()
