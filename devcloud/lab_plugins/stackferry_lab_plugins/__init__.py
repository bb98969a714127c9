"""Plug-ins installed into the lab's OpenStack virtualenv (not into stackferry's).

They fill the three gaps of an agentless, LVM-less single machine:
- ``ml2_bind_all``: binds every port, so nova can boot with neutron ports;
- ``cinder_file``: a cinder driver keeping each volume as a sparse file of real bytes;
- ``serve``: runs a service's own WSGI application under gunicorn on loopback.
"""
