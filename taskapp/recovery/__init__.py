"""Account recovery and addresses by email: password reset, verification, address change.

The blueprint is imported from ``taskapp.recovery.routes``, not re-exported here: signup
(auth) uses ``recovery.tokens``, and the routes import the auth services in turn.
"""
