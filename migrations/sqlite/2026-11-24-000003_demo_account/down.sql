DROP TABLE demo_account;
