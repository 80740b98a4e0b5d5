"""Wire formats as pure functions: how requests and answers look on the network, both ways."""
