"""A text stream for log observers that records each C{write} apart."""


class RecordingStream:
    """C{writes}: what each C{write} was given, in order."""

    def __init__(self):
        self.writes = []

    def write(self, text):
        self.writes.append(text)

    def flush(self):
        pass
