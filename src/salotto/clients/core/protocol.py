"""IRCv3 names the client core uses in more than one place: client tags and batch types."""

from __future__ import annotations

__all__ = ["CONCAT_TAG", "MULTILINE_BATCH", "REACT_TAG", "REPLY_TAG", "UNREACT_TAG"]

# A reply names the msgid it answers (https://ircv3.net/specs/client-tags/reply).
REPLY_TAG = "+draft/reply"
# A reaction is a TAGMSG with the emoji and, in REPLY_TAG, the message reacted to
# (https://ircv3.net/specs/client-tags/react); unreact takes one back.
REACT_TAG = "+draft/react"
UNREACT_TAG = "+draft/unreact"
# Several lines as one message (https://ircv3.net/specs/extensions/multiline); a line with the concat
# tag continues the one before it without a line break.
MULTILINE_BATCH = "draft/multiline"
CONCAT_TAG = "draft/multiline-concat"
