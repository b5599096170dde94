"""fsd — call-distribution daemon for a hosted virtual PBX on FreeSWITCH."""

__version__ = "0.1.0"
