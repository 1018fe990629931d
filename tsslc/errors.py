"""The one exception type for user mistakes: the CLI prints its message, no traceback."""


class TsslcError(Exception):
    """A user-facing error: bad config, missing or corrupt file, a limit a target cannot meet.

    The message names the offending thing (file, layer, key) and, where there is one, the
    remedy.
    """
