"""Trust on the gateway: who may command it, and evidence of who did.

* :mod:`~edge_agent.trust.canonical`: the bytes a signature covers (canonical JSON);
* :mod:`~edge_agent.trust.keys`: Ed25519 key files, the gateway's own key pair;
* :mod:`~edge_agent.trust.policy`: ``[security]`` in the site config, keys with roles;
* :mod:`~edge_agent.trust.envelope`: the signed command envelope (``auth``), its check;
* :mod:`~edge_agent.trust.nonces`: nonces seen, kept across restarts, and the trusted time floor;
* :mod:`~edge_agent.trust.artefacts`: signatures over forecast models and node firmware images;
* :mod:`~edge_agent.trust.audit`: the hash-chained, append-only audit log and its verification;
* :mod:`~edge_agent.trust.gateway`: all of it for one running daemon.

docs/security.md explains the threat model; docs/mqtt.md shows a central system how to sign.
"""
