"""Lambda entry points: thin handlers that parse, call domain logic and return a model.

The module names are the seed's function names (``ingress_handler``, ``validate_input``,
``prepare_source``, ``trigger_migration``, ``verify_migration``, ``finalize_cutover``,
``callback_handler``, ``rollback_handler``), each exposing ``handler(event, context)``.
"""
