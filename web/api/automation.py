"""Automation rules (admins): list, create, read, replace, delete, switch on and off,
reorder. Rules are validated when written, with the offending part named in the error."""

from __future__ import annotations

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody

from ticketcore.domain.automation import Reorder, Rule, RuleInput
from ticketcore.web.auth import HelpdeskDep, PrincipalDep


class AutomationRuleController(Controller):
    """``/api/v1/automation/rules``"""

    path = "/api/v1/automation/rules"
    tags = ["automation"]

    @get("/")
    async def list_rules(self, helpdesk: HelpdeskDep, principal: PrincipalDep) -> list[Rule]:
        """Every rule, enabled or not, in the order they run."""
        return await helpdesk.automation.list(principal)

    @post("/")
    async def create_rule(
        self, data: JSONBody[RuleInput], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Rule:
        """Add a rule, last in order (201)."""
        return await helpdesk.automation.create(principal, data)

    @post("/reorder", status_code=200)
    async def reorder_rules(
        self, data: JSONBody[Reorder], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> list[Rule]:
        """Set the run order: ``{"ids": [...]}`` lists every rule once."""
        return await helpdesk.automation.reorder(principal, data)

    @get("/{rule_id:int}")
    async def get_rule(
        self, rule_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Rule:
        """One rule."""
        return await helpdesk.automation.get(principal, rule_id)

    @put("/{rule_id:int}")
    async def replace_rule(
        self,
        rule_id: FromPath[int],
        data: JSONBody[RuleInput],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
    ) -> Rule:
        """Replace a rule's definition; give ``version`` to refuse a stale edit (409)."""
        return await helpdesk.automation.update(principal, rule_id, data)

    @delete("/{rule_id:int}")
    async def delete_rule(
        self, rule_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> None:
        """Remove a rule (204); its pending timers then do nothing."""
        await helpdesk.automation.delete(principal, rule_id)

    @post("/{rule_id:int}/enable", status_code=200)
    async def enable_rule(
        self, rule_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Rule:
        """Switch a rule on."""
        return await helpdesk.automation.set_enabled(principal, rule_id, True)

    @post("/{rule_id:int}/disable", status_code=200)
    async def disable_rule(
        self, rule_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Rule:
        """Switch a rule off: it stays stored and in order, and fires no more."""
        return await helpdesk.automation.set_enabled(principal, rule_id, False)
