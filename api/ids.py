"""Database ids on the wire: positive integers up to 2**53 - 1.

Every id a client sends (in a path, a query or a body) is bounded, so an id past
what the database column holds is a 400 naming the field instead of a driver
overflow (a 500), and the OpenAPI document says so. The bound is the largest
integer every JSON reader (JavaScript's numbers) holds exactly, far below int64,
and also exact as the float Litestar writes a path parameter's bound as.
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter
from msgspec import Meta

MAX_ID = 2**53 - 1

# In msgspec Structs (request bodies).
Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
# Handler parameters: a path segment or a query parameter.
IdParam = Annotated[int, Parameter(ge=1, le=MAX_ID)]
