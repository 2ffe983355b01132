# ACA-Py 1.7.0 from PyPI, as the tests install it (scripts/acapy-stack.sh).
FROM python:3.13-slim
RUN pip install --no-cache-dir acapy-agent==1.7.0 && useradd --system --uid 10002 acapy
USER acapy
ENTRYPOINT ["aca-py"]
