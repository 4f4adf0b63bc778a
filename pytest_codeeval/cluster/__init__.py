"""Beyond one machine: each model x preset engine as Ray actors on a cluster.

    connect.py   reaching the cluster (--ray-address) and what its nodes offer
    actor.py     the actor: builds an engine from its recipe on its node, generates
    pool.py      one engine's replicas (actors), seen by the controller as one Engine
    dispatch.py  the controller side: every model's work submitted when the session
                 starts, each chunk stored as it returns, lost nodes replaced

Ray is imported only here, and only with --ray-address.
"""
