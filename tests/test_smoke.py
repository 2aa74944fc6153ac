def test_health(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_signup_and_task(auth, make_task, client):
    headers = auth()
    task = make_task(headers, title="x")
    assert client.get(f"/tasks/{task['id']}", headers=headers).json["title"] == "x"
