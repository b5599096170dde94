"""mod_xml_curl directory: FreeSWITCH's users, domains, groups and gateways served from PostgreSQL."""

from fsd.directory.directory import ERROR, FOUND, NOT_FOUND, STALE, DatabaseUnavailable, Directory
from fsd.directory.render import Renderer
from fsd.directory.request import BadRequest, DirectoryRequest, parse

__all__ = ["ERROR", "FOUND", "NOT_FOUND", "STALE", "BadRequest", "DatabaseUnavailable", "Directory",
           "DirectoryRequest", "Renderer", "parse"]
