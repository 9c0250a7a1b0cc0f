"""Privacy on the gateway: the inventory of its stores, retention, subject rights, publication policy.

- :mod:`edge_agent.privacy.config`: the ``[privacy]`` section;
- :mod:`edge_agent.privacy.stores`: every store the gateway keeps, as one table (the CLI's
  ``privacy report`` and docs/privacy.md are both written from it);
- :mod:`edge_agent.privacy.retention`: the one sweep that enforces every store's retention;
- :mod:`edge_agent.privacy.subjects`: a patron's access and erasure;
- :mod:`edge_agent.privacy.budget` and :mod:`edge_agent.privacy.policy`: what the publications may
  say (seat states, thresholded or differentially private counts) and the per-day epsilon budget.

Nothing here is imported by a gateway that does not use it, except the config section.
"""
