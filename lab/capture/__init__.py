"""Packet capture: tcpdump on a host of the lab (`capture.py`), and what a capture file
holds, read here without tcpdump (`pcap.py`): IGMP membership reports and multicast
datagrams."""
