"""The operator API's routers, one module per resource; `functions.admin.app` includes them."""
