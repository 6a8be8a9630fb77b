"""`python -m tests.fakekube`: serves until signalled and writes a kubeconfig clients can use."""

from __future__ import annotations

import asyncio
import pathlib
import signal

import yaml
from kubernetes.aio import client, config

from tests.fakekube.testing import job_manifest, server_command

ROOT = pathlib.Path(__file__).resolve().parents[3]


async def test_the_cli_serves_a_cluster_described_by_its_kubeconfig(
    tmp_path: pathlib.Path,
) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    process = await asyncio.create_subprocess_exec(
        *server_command(kubeconfig, "--namespace", "team"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=str(kubeconfig), client_configuration=configuration
        )
        namespace = yaml.safe_load(kubeconfig.read_text())["contexts"][0]["context"]["namespace"]
        async with client.ApiClient(configuration=configuration) as api:
            batch = client.BatchV1Api(api)
            await batch.create_namespaced_job(namespace, job_manifest("cli"))
            listed = await batch.list_namespaced_job(namespace)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)

    assert url.startswith("http://127.0.0.1:")
    assert configuration.host == url
    assert configuration.api_key["BearerToken"] == "Bearer fake-token"
    assert namespace == "team"
    assert [job.metadata.name for job in listed.items] == ["cli"]
    assert code == 0
