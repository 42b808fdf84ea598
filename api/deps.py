"""The dependencies every route takes: the context it reads, the asking user, and the role it needs.

The routers are module-level, built once at import as the FastAPI full-stack template builds them;
what they answer from is the app's: `create_app` keeps its `ApiContext` and `TokenAuth` on
`app.state`, and the dependencies here read them from the request's app, so that each app (the
tests run several in one process) answers from its own site and stores.

A route says who may call it by the type of its user parameter (`user: Duty`): the role is checked
(403) and a change held to the user's rate (429) before the route runs. The token itself was
checked earlier, before the body was read: by the edge (api.edge), or by `current_user` in an
app without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from api.auth import Role, TokenAuth, User
from api.context import ApiContext, source_of


def context(request: Request) -> ApiContext:
    """The context of the app the request came to."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def token_auth(request: Request) -> TokenAuth:
    auth: TokenAuth = request.app.state.auth
    return auth


async def current_user(request: Request) -> User:
    """The user of the request's token: the one the edge found, or (an app without the edge)
    authenticated here; 401 without a good token."""
    user = getattr(request.state, "user", None)
    if not isinstance(user, User):
        address = source_of(request)
        user = await token_auth(request).authenticate(request.headers.get("authorization", ""), address)
        request.state.user = user
    return user


def require(role: Role) -> Callable[..., Awaitable[User]]:
    """A dependency giving the asking user once they are found to have `role`."""

    async def admitted(request: Request, user: Annotated[User, Depends(current_user)]) -> User:
        token_auth(request).admit(user, role, request.method)
        return user

    return admitted


async def visible_devices(request: Request) -> set[str] | None:
    """The ids of the devices the asking user's buildings hold (None: every device), for routes
    served beside the API's own, such as the simulators' control under /sim."""
    return context(request).visible(await current_user(request))


Ctx = Annotated[ApiContext, Depends(context)]
Viewer = Annotated[User, Depends(require(Role.VIEWER))]
Duty = Annotated[User, Depends(require(Role.DUTY))]
Engineer = Annotated[User, Depends(require(Role.ENGINEER))]
Manager = Annotated[User, Depends(require(Role.MANAGER))]
