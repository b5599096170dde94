"""The service layer: validate → store in one transaction (with audit) → NOTIFY every fsd process."""

from fsd.services.base import Actor
from fsd.services.departments import DepartmentService
from fsd.services.employees import CreatedEmployee, EmployeeService, MailSettings
from fsd.services.gateways import GatewayService
from fsd.services.numbers import IvrService, NumberService
from fsd.services.tenants import TenantService


class Services:
    """All configuration services over one pool (built by the composition root or the CLI)."""

    def __init__(self, *, pool, mail: MailSettings | None = None):
        self.pool = pool
        self.tenants = TenantService(pool=pool)
        self.employees = EmployeeService(pool=pool, mail=mail)
        self.departments = DepartmentService(pool=pool)
        self.numbers = NumberService(pool=pool)
        self.ivr = IvrService(pool=pool)
        self.gateways = GatewayService(pool=pool)


__all__ = ["Actor", "CreatedEmployee", "DepartmentService", "EmployeeService", "GatewayService", "IvrService",
           "MailSettings", "NumberService", "Services", "TenantService"]
