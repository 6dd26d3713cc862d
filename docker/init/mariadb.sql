-- The `crm` source of the compose demo (the image creates the database and
-- the meshgate_reader user): one table, readable by that user.
CREATE TABLE contacts (
    contact_id INT PRIMARY KEY,
    member_id  INT NOT NULL,
    channel    VARCHAR(16) NOT NULL,
    contacted  DATE NOT NULL
);
INSERT INTO contacts
SELECT seq, 1 + (seq MOD 200), ELT(1 + seq MOD 3, 'phone', 'email', 'letter'),
       DATE '2025-01-01' + INTERVAL (seq MOD 365) DAY
  FROM seq_1_to_300;
GRANT SELECT ON crm.* TO 'meshgate_reader'@'%';
