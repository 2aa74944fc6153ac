"""Outgoing mail: the outbox (models), its delivery over SMTP (service, transport), and the
one attempt made right after a response that queued a message (``register_mail``)."""

from taskapp.mail.service import queue_mail, register_mail

__all__ = ["queue_mail", "register_mail"]
