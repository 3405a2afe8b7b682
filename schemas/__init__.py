"""marshmallow schemas: the wire shapes of docs/contract.md, one module per resource."""
