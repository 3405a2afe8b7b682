"""The rules of the contract, free of Flask request handling."""
