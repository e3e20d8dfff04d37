"""The web console (router: ``app.answer``): a few read-only pages on the node's HTTP listener (``/console``).

Operators of Kafka look at a cluster in a console (kafka-ui, AKHQ); this one is
served by each node itself, so there is nothing else to run. Pages are rendered on
the server (``pages``) from plain dicts (``views``), which ``/console/api/...`` also
serves as JSON; one small script redraws the charts from ``history``. Nothing is
fetched from outside the machine, and nothing here changes the cluster.

Paths:
  /console                                  nodes, controller quorum, partitions in trouble
  /console/topics, /console/topics/T        topics; partitions, offsets, sizes, configs, chart
  /console/topics/T/records?partition=P&offset=O|timestamp=MS&count=N   record browser
  /console/groups, /console/groups/G        groups coordinated here; members, lag, chart
  /console/connections                      client connections: software, client id, principal
  /console/api/<any of the above>           the same as JSON
  /console/api/series/topic/T, .../group/G  the charts' points
"""
