DROP TABLE admin_token;
