"""Logging filters referenced by settings.LOGGING."""

import logging


class WithoutTraceback(logging.Filter):
    """Log the record's message alone: for errors whose traceback tells nothing (a client
    sending a Host header that is not allowed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True
